"""Retroaction: content matched again when banks grow (automatic passes and full rescans)."""
