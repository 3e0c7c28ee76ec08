"""The MCP bridge: UDS's GraphQL operations as MCP tools, on streamable HTTP and stdio.

See docs/mcp.md. Nothing here touches the database or a domain service: every tool runs a
named GraphQL operation (operations.graphql) through a gateway (gateway.py).
"""
