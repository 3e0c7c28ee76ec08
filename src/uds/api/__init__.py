"""The GraphQL layer (strawberry): context, types, queries and mutations per domain.

Resolvers stay thin: name the action, ask the policy engine, call the service, map to types.
"""
