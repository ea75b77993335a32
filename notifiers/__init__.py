"""Delivery: the `Alert` type, the `Notifier` protocol and the notifiers (log now, apprise next)."""

from notifiers.alert import Alert, Delivery, Level, Notifier, TargetedNotifier, TargetOutcome
from notifiers.log import LogNotifier

__all__ = ["Alert", "Delivery", "Level", "LogNotifier", "Notifier", "TargetOutcome", "TargetedNotifier"]
