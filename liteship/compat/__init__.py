"""In-memory compatibility layers between old OD API code and the TF 2.21 stack."""
