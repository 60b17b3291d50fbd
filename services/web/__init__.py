"""The web service: the installer's page (manual sections 9 to 12), live from the bus, secure
by default. Microdot on asyncio in its own thread beside the service's bus loop."""
