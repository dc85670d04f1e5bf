"""API transport: the Lead Gen & CRM JSON-RPC client and hook, and Salesforce access through the
provider's ``SalesforceHook``. Clients connect, page, batch, retry and count calls; they hold no
sync rules."""
