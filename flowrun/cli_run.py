"""Commands that run workflows: run, estimate, resume, runs."""
