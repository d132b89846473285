import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from auth_service.runtime import Runtime
from svckit.jwks import parse_jwks, parse_max_age
from svckit.tokens import TokenVerifier

from .conftest import AppContext
from .helpers import login, register


class StaticKeys:
    def __init__(self, keys: dict[str, RSAPublicKey]) -> None:
        self.keys = keys

    async def get_key(self, kid: str) -> RSAPublicKey | None:
        return self.keys.get(kid)


async def test_jwks_lists_public_rsa_keys_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
    assert len(parse_jwks(response.json())) == len(keys)  # all usable, >= 2048 bits


async def test_jwks_max_age_is_configurable(app_context: AppContext) -> None:
    async with app_context(jwks_max_age_seconds=42) as (_, client):
        response = await client.get("/.well-known/jwks.json")
    assert parse_max_age(response.headers["cache-control"]) == 42


async def test_an_issued_token_verifies_with_the_published_key(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await register(client)
    token = (await login(client, user["username"]))["access_token"]
    keys = parse_jwks((await client.get("/.well-known/jwks.json")).json())

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        keys[header["kid"]],
        algorithms=["RS256"],
        audience="api",
        issuer=runtime.settings.issuer,
    )
    assert claims["sub"] == str(user["id"])

    # And with the shared verifier, exactly as items-service does.
    verifier = TokenVerifier(StaticKeys(keys), issuer=runtime.settings.issuer, audience="api")
    verified = await verifier.verify(token)
    assert verified.user_id == user["id"]
    assert verified.username == user["username"]
    assert not verified.is_admin


async def test_authorization_server_metadata(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    issuer = runtime.settings.issuer
    assert meta["issuer"] == issuer
    assert meta["token_endpoint"] == f"{issuer}/auth/token"
    assert meta["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert set(meta["grant_types_supported"]) == {
        "password",
        "refresh_token",
        "client_credentials",
        "urn:auth-service:params:oauth:grant-type:mfa-otp",
    }
    assert meta["revocation_endpoint"] == f"{issuer}/auth/revoke"
    assert meta["introspection_endpoint"] == f"{issuer}/auth/introspect"
    assert set(meta["scopes_supported"]) == {
        "items:read",
        "items:write",
        "items:moderate",
        "users:admin",
    }
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert set(meta["introspection_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }


async def test_every_endpoint_the_metadata_lists_is_served(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    issuer = runtime.settings.issuer
    paths = set((await client.get("/openapi/auth.json")).json()["paths"])
    for name, value in meta.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            assert value.startswith(issuer), name
            assert value[len(issuer) :] in paths, name


async def test_metadata_issuer_equals_the_tokens_iss(app_context: AppContext) -> None:
    async with app_context(issuer="https://gateway.example.com") as (_, client):
        meta = (await client.get("/.well-known/oauth-authorization-server")).json()
        user = await register(client)
        token = (await login(client, user["username"]))["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == meta["issuer"]
    assert meta["token_endpoint"] == "https://gateway.example.com/auth/token"
