"""The model-centric API (PyGrid names): events, hosting, and their HTTP and WebSocket transports."""
