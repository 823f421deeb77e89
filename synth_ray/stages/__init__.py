"""Stages between data and engines: chunking, prompt building, parsing, filters."""
