"""The MQTT side of a simulated EMQX node: amqtt's broker with EMQX's authentication and authorization.

amqtt authenticates after it has already dropped an existing session of the same client id and registered
the newcomer; EMQX refuses a bad CONNECT before it touches any session. So `_initialize_client_session` is
replaced: the CONNECT is read, authenticated by EMQX's chain (the built-in database, then the HTTP
authenticator when configured: refused with CONNACK 5 "not authorized" for an anonymous or unknown user or
an HTTP deny, 4 "bad username or password" for a wrong password), and only then does the session logic
run (a clean session also closes a still-connected holder of the client id, as EMQX's discard does).
Authorization of every publish and subscribe goes through `BrokerState.authorize`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.publish import PublishPacket
from amqtt.plugins.base import BasePlugin
from amqtt.session import Session
from amqtt.utils import gen_client_id

from .http_authn import HttpAuthenticator, http_authenticate
from .state import CONNACK_ACCEPTED, CONNACK_BAD_USERNAME_OR_PASSWORD, CONNACK_NOT_AUTHORIZED, BrokerState

log = logging.getLogger(__name__)

SUPERUSER = "mqcloud.superuser"
CONNECTED_AT = "mqcloud.connected_at"
LISTENER = "mqcloud.listener"
KEEPALIVE = "mqcloud.keepalive"
LISTENER_NAMES = {"default": "tcp:default", "ws": "ws:default", "ssl": "ssl:default", "wss": "wss:default"}


class CountersPlugin(BasePlugin[Any]):
    """Counts what leaves the broker (`messages.sent`) and disconnections, from amqtt's events."""

    def _state(self) -> BrokerState:
        return self.context._broker_instance.state

    async def on_mqtt_packet_sent(self, *, packet: Any, session: Session | None = None) -> None:
        if isinstance(packet, PublishPacket):
            self._state().metrics["messages.sent"] += 1

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        self._state().metrics["client.disconnected"] += 1


class Handler(BrokerProtocolHandler):
    """amqtt's broker handler ignores a silent client; EMQX closes it after 1.5 × its keepalive."""

    def handle_read_timeout(self) -> None:
        asyncio.get_running_loop().create_task(self.handle_connection_closed())


class Node(Broker):
    def __init__(self, config: dict[str, Any], state: BrokerState,
                 http_authenticator: HttpAuthenticator | None = None) -> None:
        self.state = state
        self.http_authenticator = http_authenticator
        super().__init__(config)

    # --- connect ----------------------------------------------------------------------------------------------

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        try:
            handler, session = await Handler.init_from_connect(reader, writer, self.plugins_manager)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            await _close(writer)
            raise MQTTError(f"bad CONNECT from {remote_address}:{remote_port}: {exc}") from exc

        code, superuser = await self._authenticate_chain(session, remote_address)
        if code != CONNACK_ACCEPTED:
            await ConnackPacket.build(0, code).to_stream(writer)
            await _close(writer)
            raise MQTTError(f"refused {session.username!r} from {remote_address}:{remote_port} (CONNACK {code})")

        existing = self._sessions.get(session.client_id) if session.client_id else None
        if session.clean_session:
            if session.client_id:
                if existing and existing[0].transitions.is_connected():
                    await self._close_connection(existing[0], existing[1])
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif existing:
            old = existing[0]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password", "remote_address", "remote_port", "ssl_object"):
                setattr(old, attr, getattr(session, attr))
            session = old
            session.parent = 1
        else:
            session.parent = 0
        session.attributes[KEEPALIVE] = session.keep_alive
        session.keep_alive = (session.keep_alive * 3 + 1) // 2  # amqtt's read timeout; 0 stays "none"
        session.attributes[SUPERUSER] = superuser
        session.attributes[CONNECTED_AT] = datetime.now(UTC)
        self.state.metrics["client.connected"] += 1
        return handler, session

    async def _authenticate_chain(self, session: Session, remote_address: str) -> tuple[int, bool]:
        """EMQX's authentication chain: the built-in database, then the HTTP authenticator when configured
        (only while the answer so far is ``ignore``). A built-in ``deny`` is a wrong password (CONNACK 4);
        the HTTP service's ``deny`` and a chain that ends in ``ignore`` are ``not_authorized`` (5). With
        ``allow_anonymous`` a client without a username is accepted before the chain."""
        if self.state.anonymous(session.username):
            return self.state.conclude("allow", False, denied_code=CONNACK_NOT_AUTHORIZED)
        decision, superuser = self.state.builtin(session.username, session.password)
        if decision != "ignore" or self.http_authenticator is None:
            return self.state.conclude(decision, superuser, denied_code=CONNACK_BAD_USERNAME_OR_PASSWORD)
        decision, http_superuser = await http_authenticate(self.http_authenticator, {
            "clientid": session.client_id, "username": session.username, "password": session.password,
            "peerhost": remote_address, "cert_subject": ""})
        return self.state.conclude(decision, bool(http_superuser), denied_code=CONNACK_NOT_AUTHORIZED)

    async def _authenticate(self, session: Session, _: ListenerConfig) -> bool:
        return True  # done in _initialize_client_session, before any session is touched

    async def _handle_client_session(self, reader: ReaderAdapter, writer: WriterAdapter, client_session: Session,
                                     handler: BrokerProtocolHandler, server: Any, listener_name: str) -> None:
        client_session.attributes[LISTENER] = LISTENER_NAMES.get(listener_name, f"tcp:{listener_name}")
        await super()._handle_client_session(reader, writer, client_session, handler, server, listener_name)

    # --- publish / subscribe ----------------------------------------------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        if action not in (Action.PUBLISH, Action.SUBSCRIBE):
            return True  # EMQX does not authorize deliveries
        superuser = bool(session.attributes.get(SUPERUSER))
        verb = "publish" if action == Action.PUBLISH else "subscribe"
        allowed = self.state.authorize(session.username, session.client_id or "", superuser, verb, topic)
        if not allowed:
            if action == Action.PUBLISH:
                self.state.metrics["messages.dropped"] += 1
            if self.state.settings.get("deny_action") == "disconnect" and session.client_id:
                asyncio.get_running_loop().create_task(self.kick(session.client_id))
        return allowed

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        # A will message is a publish like any other: EMQX drops it when the client may not publish there.
        # (No deny_action here: the client is already going.)
        session = client_session
        if session.will_flag and session.will_topic and not self.state.authorize(
            session.username, session.client_id or "", bool(session.attributes.get(SUPERUSER)), "publish",
            session.will_topic,
        ):
            self.state.metrics["messages.dropped"] += 1
            session.will_flag = False
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _handle_message_delivery(self, client_session: Session, handler: BrokerProtocolHandler,
                                       wait_deliver: asyncio.Future[Any]) -> bool:
        if wait_deliver.result() is not None:
            self.state.metrics["messages.received"] += 1
        return await super()._handle_message_delivery(client_session, handler, wait_deliver)

    async def _broadcast_message(self, session: Session | None, topic: str | None, data: bytes | bytearray | None,
                                 force_qos: int | None = None) -> None:
        if session is not None and topic is not None and not any(
            subs and self._matches(topic, topic_filter) for topic_filter, subs in self._subscriptions.items()
        ):
            self.state.metrics["messages.dropped"] += 1
            self.state.metrics["messages.dropped.no_subscribers"] += 1
        await super()._broadcast_message(session, topic, data, force_qos)

    # --- what the management API reads and does ---------------------------------------------------------------

    def connected_sessions(self) -> list[Session]:
        return [s for s, _ in self._sessions.values() if s.transitions.is_connected()]

    def client_info(self, session: Session) -> dict[str, Any]:
        connected_at = session.attributes.get(CONNECTED_AT) or datetime.now(UTC)
        return {
            "clientid": session.client_id,
            "username": session.username,
            "ip_address": session.remote_address,
            "port": session.remote_port,
            "connected_at": connected_at.isoformat(timespec="milliseconds"),
            "created_at": connected_at.isoformat(timespec="milliseconds"),
            "proto_name": "MQTT",
            "proto_ver": 4,
            "connected": True,
            "clean_start": bool(session.clean_session),
            "keepalive": session.attributes.get(KEEPALIVE, session.keep_alive),
            "listener": session.attributes.get(LISTENER, "tcp:default"),
            "is_superuser": bool(session.attributes.get(SUPERUSER)),
            "subscriptions_cnt": sum(
                1 for subs in self._subscriptions.values() for s, _ in subs if s.client_id == session.client_id
            ),
        }

    async def kick(self, client_id: str) -> bool:
        """Close a connected client's connection now (EMQX's `DELETE /clients/{clientid}`)."""
        entry = self._sessions.get(client_id)
        if entry is None or not entry[0].transitions.is_connected():
            return False
        await self._close_connection(*entry)
        if self._sessions.get(client_id, (None, None))[0] is entry[0]:
            await self._delete_session(client_id)  # EMQX's kick discards the session too
        return True

    async def _close_connection(self, session: Session, handler: BrokerProtocolHandler) -> None:
        await handler.handle_connection_closed()  # the client's message loop disconnects the session
        for _ in range(200):
            if not session.transitions.is_connected():
                return
            await asyncio.sleep(0.01)
        await handler.stop()

    def stats(self) -> dict[str, int]:
        sessions = [s for s, _ in self._sessions.values()]
        live = sum(1 for s in sessions if s.transitions.is_connected())
        persistent = sum(1 for s in sessions if not s.transitions.is_connected() and not s.clean_session)
        topics = [f for f, subs in self._subscriptions.items() if subs]
        return {
            "connections.count": live + persistent,
            "live_connections.count": live,
            "sessions.count": live + persistent,
            "topics.count": len(topics),
            "subscriptions.count": sum(len(self._subscriptions[f]) for f in topics),
            "retained.count": len(self._retained_messages),
        }

    def listening_ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        for name, server in self._servers.items():
            sockets = getattr(server.instance, "sockets", None) or []
            if sockets:
                ports[name] = sockets[0].getsockname()[1]
        return ports


async def _close(writer: WriterAdapter) -> None:
    try:
        await writer.close()
    except (TimeoutError, OSError, AMQTTError):
        pass
