"""Priors (docs/spec.md §3): the provider interface, the offline store, and the providers."""
