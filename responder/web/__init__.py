"""The HTTP edge: the aiohttp app, the webhook receiver and its middlewares."""
