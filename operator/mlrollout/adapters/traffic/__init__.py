"""Traffic routers: how a candidate's share of live traffic is set and read back."""
