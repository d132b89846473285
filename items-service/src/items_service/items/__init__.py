"""The items resource: routes, schemas, queries."""
