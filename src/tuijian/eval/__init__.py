"""Offline evaluation of recall models on public data, under a published protocol."""
