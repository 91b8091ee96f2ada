"""Exchanges: configured collaborations, fetching into banks, opinions written back."""
