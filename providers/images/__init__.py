"""Image adapters: the contract (``base``), the offline model (``local``) and its painter."""
