"""Fleet CA, enrollment tokens, hub enrollment and the device inventory."""
