"""API methods, one module per object family. Importing this package registers them all."""

from . import crm, leads, marketing, schema

__all__ = ["crm", "leads", "marketing", "schema"]
