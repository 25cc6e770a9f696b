"""The console's pages and forms, one router module per page."""
