// OpenTelemetry tracing, only when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per request
// (@fastify/otel: route template, method, status, and the caller's W3C traceparent as parent) and
// per database statement or transaction (db/query-spans.ts), sent over OTLP/HTTP in batches. The
// SDK is loaded only then. Spans carry no patient data: the URL path without its query string, and
// statements with their placeholders, not the values.
import type { Tracer } from '@opentelemetry/api';
import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';

export interface Tracing {
  tracer: Tracer;
  /** Registered before any route, so that every route is instrumented. */
  plugin: FastifyPluginAsync;
  /** Sends the spans not yet sent; run when the app closes. */
  shutdown: () => Promise<void>;
}

export async function startTracing(config: Config['tracing']): Promise<Tracing | undefined> {
  if (!config.endpoint) return undefined;
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, { FastifyOtelInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@fastify/otel'),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    // OTLP/HTTP with JSON, to the endpoint's traces path; OTEL_EXPORTER_OTLP_HEADERS (a collector's
    // token) is read by the exporter itself.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: new URL('v1/traces', config.endpoint.endsWith('/') ? config.endpoint : `${config.endpoint}/`).toString() }))],
  });
  // The async-context manager (spans follow awaits) and the W3C trace-context propagator.
  provider.register();
  const instrumentation = new FastifyOtelInstrumentation({
    requestHook: (span, request) => {
      span.setAttribute('url.path', request.url.split('?')[0]!);
    },
  });
  instrumentation.setTracerProvider(provider);
  return {
    tracer: provider.getTracer('massage-referral-network'),
    plugin: instrumentation.plugin() as unknown as FastifyPluginAsync,
    shutdown: () => provider.shutdown(),
  };
}
