/**
 * Dialling the channel: a WebSocket to the node's `/aio/channel`, its upgrade signed with the
 * secret; the node proves in its answer that it knows the secret too, and both sides derive
 * the session key every message after is sealed with (docs/security.md, "The channel").
 */
import WebSocket from "ws";
import { NetworkRequestError, NotDelivered } from "../../../errors.js";
import {
  ChannelSigner,
  HEADER_ANSWER,
  HEADER_NONCE,
  type PeerIdentity,
  sameMac,
  sessionKey,
  signAnswer,
  signRequest,
} from "../../auth.js";
import { connectVerified, type PeerTls } from "../../tls.js";
import type { Dial, PacketPipe } from "../../transport.js";
import { PacketChannel } from "./packet-channel.js";

export interface ChannelDialOptions {
  /** `ws://host:port/aio/channel` or `wss://…`. */
  url: string;
  /** The node's name, for messages. */
  hostname: string;
  maxDepth: number;
  /** Largest packet this side sends. */
  maxPacketBytes: number;
  /** Shared secret: the handshake is signed, and every message after it. */
  secret: string;
  /** The run of the node the handshake is signed for, and its clock. */
  identity(): PeerIdentity;
  /** How to verify the node's certificate, for wss:// URLs. */
  tls: PeerTls;
  connectTimeoutMs: number;
  /** A connection attempt was refused: nothing listens at the node's address. */
  onRefused?: () => void;
  /** The node refused the handshake's credentials (a wrong secret, or a restarted node). */
  onUnauthorized?: () => void;
}

export function channelDial(options: ChannelDialOptions): Dial {
  return (events) =>
    new Promise<PacketPipe>((resolve, reject) => {
      const secret = options.secret;
      const { pathname } = new URL(options.url);
      const signed = secret
        ? signRequest(secret, "GET", options.identity(), pathname, "")
        : undefined;
      const socket = new WebSocket(options.url, {
        perMessageDeflate: false,
        handshakeTimeout: options.connectTimeoutMs,
        ...(signed ? { headers: { ...signed } } : {}),
        ...(options.tls.enabled
          ? {
              createConnection: ((tcp: { host?: string; port?: number; servername?: string }) =>
                connectVerified(
                  options.tls,
                  { host: tcp.host, port: tcp.port, servername: tcp.servername },
                  () => undefined,
                )) as unknown as WebSocket.ClientOptions["createConnection"],
            }
          : {}),
      });
      const channel = new PacketChannel(socket, {
        maxDepth: options.maxDepth,
        maxPacketBytes: options.maxPacketBytes,
        onPacket: events.packet,
        onBadMessage: (error) => {
          events.badMessage(error);
          socket.terminate();
        },
      });
      let opened = false;
      let refused = false;
      // The node must prove it knows the secret too; then both derive the session key.
      socket.once("upgrade", (response) => {
        if (!secret || !signed) return;
        const serverNonce = response.headers[HEADER_NONCE];
        const answer = response.headers[HEADER_ANSWER];
        const expected =
          typeof serverNonce === "string"
            ? signAnswer(secret, signed[HEADER_NONCE], serverNonce)
            : "";
        if (
          typeof answer !== "string" ||
          typeof serverNonce !== "string" ||
          !sameMac(answer, expected)
        ) {
          refused = true;
          reject(
            new NetworkRequestError(
              "UNAUTHORIZED",
              `${options.hostname} did not prove that it knows the secret; the channel is closed`,
              { host: options.hostname },
            ),
          );
          socket.terminate();
          return;
        }
        channel.sign(
          new ChannelSigner(sessionKey(secret, signed[HEADER_NONCE], serverNonce), "client"),
        );
      });
      socket.once("open", () => {
        if (refused) return;
        opened = true;
        resolve(channel);
      });
      // Every error, also after opening: one left unheard would end the process.
      socket.on("error", (error) => {
        if (opened) return;
        reject(new NotDelivered(`cannot connect to ${options.hostname}: ${error.message}`));
        if ((error as { code?: unknown }).code === "ECONNREFUSED") options.onRefused?.();
      });
      socket.once("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        reject(
          new NotDelivered(
            status === 401
              ? `${options.hostname} refused this node's credentials`
              : `${options.hostname} refused the channel (HTTP ${status})`,
          ),
        );
        socket.terminate();
        if (status === 401) options.onUnauthorized?.();
      });
      socket.on("message", events.heard);
      socket.on("pong", events.heard);
      socket.once("close", () => {
        if (opened) events.closed();
      });
    });
}
