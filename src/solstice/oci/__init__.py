"""OCI plugins: references, registry client, credentials, platforms, cache, signatures, push."""
