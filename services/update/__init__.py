"""The update service: firmware packages (`.pak`) verified, installed offline as a fresh
release, switched to, health-checked, then committed or rolled back (manual 10.5)."""
