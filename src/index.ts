export type {
  AioConfig,
  ArgumentType,
  ConfigObject,
  GeneralConfig,
  Isolation,
  LogLevelName,
  ManifestArgument,
  ManifestEndpoint,
  NatsConfig,
  NetworkingConfig,
  PluginEntry,
  PluginManifest,
  ResourceLimits,
  TransportName,
} from "./config/types.js";
export type { EndpointInfo, EndpointKind } from "./core/endpoint.js";
export type {
  AioEndpoints,
  CallRest,
  CallResult,
  EndpointName,
  KnownPlugin,
  PluginName,
  ResultOfMember,
  ResultOfMethod,
  UntypedPlugin,
} from "./core/typed-calls.js";
export type {
  CallInfo,
  ExecuteOptions,
  NodeInfo,
  PluginInfo,
  PluginState,
  Subscription,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicHandler,
  TopicInfo,
  TopicOptions,
} from "./core/types.js";
export {
  AioError,
  type CallSite,
  ConfigError,
  type ConfigErrorCode,
  type ErrorCode,
  NetworkRequestError,
  NodeError,
  type NodeErrorCode,
  PluginTypeMismatchError,
  RequestError,
  type RequestErrorCode,
  type WireError,
} from "./errors.js";
export type { Logger, LogLine } from "./log.js";
export { PluginCore, type PluginCoreEvents, type PluginCoreOptions } from "./node/plugin-core.js";
export { handleErrors, logErrors } from "./plugins/decorators.js";
export { Plugin } from "./plugins/plugin.js";
