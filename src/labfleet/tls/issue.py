"""One ACME issuance with certbot's ``acme`` library: account, order, HTTP-01, finalize.

Every failure becomes :class:`IssuanceFailed` carrying the ACME server's own
words (the problem document's type and detail), so ``labfleet up`` can stop
with them instead of serving something else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from acme import challenges, client, crypto_util, errors, messages
from josepy.jwk import JWKRSA

from labfleet.config.tls import AcmeSection
from labfleet.tls.responder import Challenges
from labfleet.tls.store import CertStore, new_cert_key

USER_AGENT = "labfleet"


class IssuanceFailed(Exception):
    """The ACME server refused or could not validate; ``reason`` is what it said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _problem(error: Any) -> str:
    if error is None:
        return "no reason given"
    typ = getattr(error, "typ", "") or ""
    detail = getattr(error, "detail", "") or str(error)
    return f"{detail} ({typ})" if typ else detail


def _validation_reason(exc: errors.ValidationError) -> str:
    parts = []
    for authzr in exc.failed_authzrs:
        name = authzr.body.identifier.value
        for chall in authzr.body.challenges:
            if chall.error is not None:
                parts.append(f"{name}: {_problem(chall.error)}")
    return "; ".join(parts) or str(exc)


def _client(acme: AcmeSection, store: CertStore) -> client.ClientV2:
    key = JWKRSA(key=store.load_or_create_account_key())
    verify = str(acme.ca_bundle) if acme.ca_bundle else True
    net = client.ClientNetwork(key, user_agent=USER_AGENT, verify_ssl=cast(bool, verify))
    directory = client.ClientV2.get_directory(acme.directory, net)
    acme_client = client.ClientV2(directory, net=net)
    registration = messages.NewRegistration.from_data(
        email=acme.email, terms_of_service_agreed=True
    )
    try:
        acme_client.new_account(registration)
    except errors.ConflictError as exc:  # the persisted key already has an account
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    return acme_client


def issue(acme: AcmeSection, store: CertStore, answers: Challenges, timeout: float = 120) -> None:
    """Get a certificate for ``acme.domains`` and write key + full chain into ``store``."""
    try:
        _issue(acme, store, answers, timeout)
    except IssuanceFailed:
        raise
    except errors.ValidationError as exc:
        raise IssuanceFailed(_validation_reason(exc)) from exc
    except errors.IssuanceError as exc:
        raise IssuanceFailed(_problem(exc.error)) from exc
    except messages.Error as exc:
        raise IssuanceFailed(_problem(exc)) from exc
    except errors.TimeoutError as exc:
        raise IssuanceFailed(f"the ACME server did not finish in {timeout:.0f} s") from exc
    except (errors.Error, OSError) as exc:
        raise IssuanceFailed(f"{type(exc).__name__}: {exc}") from exc


def _issue(acme: AcmeSection, store: CertStore, answers: Challenges, timeout: float) -> None:
    acme_client = _client(acme, store)
    _, key_pem = new_cert_key()
    order = acme_client.new_order(crypto_util.make_csr(key_pem, acme.domains))
    account_key = acme_client.net.key
    tokens = []
    try:
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue
            http01 = next(
                (c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                None,
            )
            if http01 is None:
                name = authzr.body.identifier.value
                raise IssuanceFailed(f"{name}: the ACME server offers no http-01 challenge")
            response, validation = http01.response_and_validation(account_key)
            token = http01.chall.encode("token")
            answers.put(token, validation)
            tokens.append(token)
            acme_client.answer_challenge(http01, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
        done = acme_client.poll_and_finalize(order, deadline=deadline)
    finally:
        for token in tokens:
            answers.drop(token)
    store.write_pair(key_pem, done.fullchain_pem.encode("ascii"))
