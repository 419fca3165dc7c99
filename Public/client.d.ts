// Types of the ChatGateway browser client (GET /client.js). Wire protocol: docs/PROTOCOL.md.

export type Address = { user: string } | { group: string };
/** "bob", "user:bob", "group:g1", or an address object. */
export type AddressLike = string | Address;

export interface Attachment {
  media_id: string;
  content_type?: string;
  size?: number;
  name?: string;
  url?: string;
  width?: number;
  height?: number;
  thumbnail_url?: string;
}

/** Inline attachment data (up to the gateway's inline limit) or an uploaded media id. */
export type OutgoingAttachment = { media_id: string } | { content_type: string; data: string; name?: string };

export interface Hello {
  type: "hello";
  user: string;
  device: string;
  session: string;
  node: string;
  heartbeat_ms: number;
  max_frame_bytes: number;
  inbox_seq: number;
}

export interface Message {
  type: "message";
  /** Snowflake id as a decimal string (exceeds 2^53). */
  id: string;
  /** Position in this user's inbox: contiguous 1, 2, 3, ... */
  seq: number;
  from: string;
  to: Address;
  body: unknown;
  ts: number;
  client_msg_id: string;
  attachments?: Attachment[];
}

export interface Ack {
  type: "ack";
  ref?: string;
  id: string;
  seq: number;
  ts: number;
  client_msg_id: string;
  duplicate?: boolean;
}

export interface PresenceEvent {
  type: "presence";
  ref?: string;
  users: { user: string; status: "online" | "offline"; last_active_at: number }[];
}

export interface TypingEvent { type: "typing"; from: string; to: Address }
export interface ReceiptEvent { type: "receipt"; from: string; with: Address; up_to: string }
export interface HistoryPage { type: "history"; ref?: string; messages: Message[]; more: boolean }

export type Transport = "websocket" | "longpoll";
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface StateEvent {
  state: ConnectionState;
  /** The transport in use (or being tried). */
  transport: Transport | null;
  /** While reconnecting: the wait before the next attempt (full jitter). */
  delayMs?: number;
  attempt?: number;
  reason?: string;
  /** The WebSocket close code that ended the last session, when there was one. */
  code?: number;
}

export interface Storage {
  get(key: string): string | null;
  set(key: string, value: string): void;
}

export interface ChatClientOptions {
  /** The gateway's base URL (http(s)://host:port); default: this page's origin. */
  url?: string;
  token?: string;
  /** Returns a fresh JWT: called at connect without `token`, and when the gateway refuses the current one (4001, 401, token_expired). */
  getToken?: () => string | Promise<string>;
  /** "auto" (default): WebSocket, long-poll when a WebSocket cannot open. */
  transport?: "auto" | "websocket" | "longpoll";
  /** In a cluster: before each (re)connect, ask `url` (the entry point) for `GET /v1/discover` and connect to the node it names; `url` itself when that fails. Default false. */
  discover?: boolean;
  /** This device's id; default: a random id kept in `storage`. */
  device?: string;
  /** Where cur_max_seq (per user) and the device id are kept; default: localStorage. */
  storage?: Storage;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  requestTimeoutMs?: number;
  /** A send unacked this long on an open connection means the connection is dead: reconnect. */
  ackTimeoutMs?: number;
  pollTimeoutMs?: number;
  syncLimit?: number;
  maxPendingSends?: number;
  deliveredDelayMs?: number;
}

export interface EventMap {
  message: Message;
  ack: Ack;
  presence: PresenceEvent;
  typing: TypingEvent;
  receipt: ReceiptEvent;
  state: StateEvent;
  hello: Hello;
  sync: { curMaxSeq: number };
  error: Error;
}

export class ChatError extends Error {
  /** A code of PROTOCOL.md section 3 (`forbidden`, `too_large`, ...), or `closed`, `unavailable`. */
  code: string;
  status?: number;
  retryAfterMs?: number;
  ref?: string;
}

export class ChatClient {
  constructor(options: ChatClientOptions);
  readonly state: ConnectionState;
  readonly transport: Transport | null;
  readonly user: string | null;
  readonly device: string;
  readonly curMaxSeq: number;
  readonly hello: Hello | null;

  on<K extends keyof EventMap>(event: K, handler: (value: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, handler: (value: EventMap[K]) => void): void;

  /** Connects and keeps reconnecting until close(); resolves with the first hello. */
  connect(): Promise<Hello>;
  /** Resolves with the ack once the message is durable; resent with the same client_msg_id across reconnects. */
  send(to: AddressLike, body: unknown, options?: { attachments?: OutgoingAttachment[]; clientMsgId?: string }): Promise<Ack>;
  /** Catches up from cur_max_seq (paging with `more`); resolves with the new cur_max_seq. */
  sync(): Promise<number>;
  history(withAddress: AddressLike, options?: { before?: string; limit?: number }): Promise<HistoryPage>;
  read(withAddress: AddressLike, upTo: string): void;
  typing(to: AddressLike): void;
  subscribePresence(users: string[]): Promise<PresenceEvent>;
  unsubscribePresence(users: string[]): void;
  upload(blob: Blob, options?: { name?: string; contentType?: string }): Promise<{
    media_id: string; size: number; stored_size: number; content_type: string; sha256: string;
    width?: number; height?: number; thumbnail?: { media_id: string; width: number; height: number; content_type: string };
  }>;
  download(urlOrMediaId: string): Promise<Blob>;
  api(method: string, path: string, body?: unknown): Promise<any>;
  createGroup(group: { id?: string; name: string; members: string[] }): Promise<{ id: string; name: string; owner: string; members: string[]; created_at: number }>;
  groups(): Promise<{ id: string; name: string; owner: string; members: string[]; created_at: number }[]>;
  /** Reconnects now, skipping the backoff wait. */
  reconnectNow(): void;
  close(): void;
}

export function backoffDelay(attempt: number, baseMs?: number, maxMs?: number): number;
export function toAddress(to: AddressLike): Address;
export function compareIds(a: string, b: string): -1 | 0 | 1;
export default ChatClient;
