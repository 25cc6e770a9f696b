"""Pure pieces of the console: metric parsing, chart geometry, CSV rows."""
