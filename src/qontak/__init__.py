"""qontak: send WhatsApp template messages through the Mekari Qontak API."""

__version__ = "0.1.0"
