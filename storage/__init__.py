"""Storage: one `Store` over sqlite-utils with registered migrations, composed of one class per concern. The only
code that writes SQL."""

from storage.mentions import SaveResult
from storage.outbox import OutboxItem
from storage.store import StorageError, Store

__all__ = ["OutboxItem", "SaveResult", "StorageError", "Store"]
