"""Studies: several training runs with one shared budget, summarised in one table."""
