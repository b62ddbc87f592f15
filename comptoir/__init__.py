"""Comptoir: a multi-tenant shop and counter platform for organizations that run activities."""
