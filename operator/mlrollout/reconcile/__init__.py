"""One reconcile tick: observe the world, decide (pure), act through the adapters, write status."""

from mlrollout.reconcile.loop import Outcome, World, reconcile

__all__ = ["Outcome", "World", "reconcile"]
