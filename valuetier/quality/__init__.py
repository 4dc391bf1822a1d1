"""Data quality: the Great Expectations suites and their learned checks, acceptances, and the
Data Docs served offline."""
