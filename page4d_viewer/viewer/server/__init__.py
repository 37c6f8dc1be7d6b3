"""The app's server: one port (the scene proxy, the request guard, uploads) and the sessions."""
