"""Storage: one `Store` over sqlite-utils with registered migrations. The only code that writes SQL."""

from storage.store import OutboxItem, SaveResult, StorageError, Store

__all__ = ["OutboxItem", "SaveResult", "StorageError", "Store"]
