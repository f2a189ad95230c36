"""The daemon's HTTP server (aiohttp.web)."""
