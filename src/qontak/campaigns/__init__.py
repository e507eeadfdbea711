"""Campaigns: one template sent to many recipients, resumable, never twice, never lost."""
