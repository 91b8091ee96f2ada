"""In-memory indexes over the banks' signals, kept fresh from the change log."""
