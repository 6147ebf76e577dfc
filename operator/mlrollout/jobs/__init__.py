"""Entry points of the Jobs the operator runs in the runtime image: gate, monitor, train."""
