"""Counter stores for rate limits outside core: Redis (servers and Lambda). The in-memory store
is in ``edgerelay.core.limits``; the Worker's Durable Object store is in the Worker."""
