"""Ray Serve scoring service: reward model and LLM judge over HTTP (``serve/config.yaml``)."""
