"""The alert service: abnormal-member rules over orders, the whitelist and the daily digest."""
