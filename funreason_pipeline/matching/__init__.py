"""Matching shared by the API graph and the sampler: names (tokens, affinity, error words), values
harvested from results and state, and the argument provider that proposes calls from them."""
