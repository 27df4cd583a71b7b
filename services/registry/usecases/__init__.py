"""Registry use cases: load, apply the domain rules, persist, announce (one unit of work)."""
