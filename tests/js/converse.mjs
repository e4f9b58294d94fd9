// A two-turn support conversation with the Vercel AI SDK (v6 or v7), traced by the
// OpenTelemetry JS SDK and exported over OTLP with the chosen trace and logs exporters.
//
//   node converse.mjs --sdk v6|v7 --traces grpc|http/json|http/protobuf
//                     --logs grpc|http/json|http/protobuf --session ID --llm BASE_URL
//                     --grpc http://127.0.0.1:PORT --http http://127.0.0.1:PORT
//
// Turn 1: "Where is order A-1042?" with a get_order_status tool (a tool loop: call,
// result, answer). Turn 2: "Thanks!", streamed. The tool logs a record in its span's
// context; each finished turn logs one with no span. The session id goes where each SDK puts it: v6's
// experimental_telemetry.metadata.sessionId, v7's runtimeContext (with the
// OpenTelemetry integration of @ai-sdk/otel). Prints one line per turn and exits 0.
import { context, logs, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPLogExporter as GrpcLogs } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as HttpLogs } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogs } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as GrpcTraces } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as HttpTraces } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraces } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { z } from 'zod';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) =>
    (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []));
for (const name of ['sdk', 'traces', 'logs', 'session', 'llm', 'grpc', 'http']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

function exporter(kind, signal) {
  const path = `${args.http}/v1/${signal}`;
  const made = {
    traces: { grpc: () => new GrpcTraces({ url: args.grpc }),
              'http/json': () => new HttpTraces({ url: path }),
              'http/protobuf': () => new ProtoTraces({ url: path }) },
    logs: { grpc: () => new GrpcLogs({ url: args.grpc }),
            'http/json': () => new HttpLogs({ url: path }),
            'http/protobuf': () => new ProtoLogs({ url: path }) },
  }[signal][kind];
  if (!made) throw new Error(`unknown ${signal} exporter ${kind}`);
  return made();
}

const resource = resourceFromAttributes({ 'service.name': `vercel-ai-${args.sdk}` });
const tracerProvider = new TracerProvider({
  resource,
  spanProcessors: [new SimpleSpanProcessor({ exporter: exporter(args.traces, 'traces') })],
});
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(tracerProvider);
const loggerProvider = new LoggerProvider({
  resource,
  processors: [new SimpleLogRecordProcessor({ exporter: exporter(args.logs, 'logs') })],
});
logs.setGlobalLoggerProvider(loggerProvider);
const logger = logs.getLogger('support-app');

const ai = args.sdk === 'v6' ? await import('ai6') : await import('ai');
const { createOpenAI } = args.sdk === 'v6'
  ? await import('ai-sdk-openai3') : await import('@ai-sdk/openai');
if (args.sdk === 'v7') {
  const { OpenTelemetry } = await import('@ai-sdk/otel');
  ai.registerTelemetry(new OpenTelemetry({ runtimeContext: true }));
}
const telemetry = args.sdk === 'v6'
  ? { experimental_telemetry: { isEnabled: true, metadata: { sessionId: args.session } } }
  : { runtimeContext: { sessionId: args.session },
      telemetry: { isEnabled: true, includeRuntimeContext: { sessionId: true } } };

function log(text) {  // a log record in the active span's context, if any
  logger.emit({ body: text, attributes: { 'app.session': args.session },
                context: context.active() });
}

const model = createOpenAI({ baseURL: args.llm, apiKey: 'unused' }).chat('gpt-4o-mini');
const tools = {
  get_order_status: ai.tool({
    description: 'Look up an order',
    inputSchema: z.object({ order_id: z.string() }),
    execute: async ({ order_id }) => {
      log(`looked up ${order_id}`);  // in the tool call's span
      return `${order_id}: shipped`;
    },
  }),
};


const messages = [{ role: 'user', content: 'Where is order A-1042?' }];
const first = await ai.generateText({
  model, system: 'You are a support bot.', messages, tools, stopWhen: ai.stepCountIs(3),
  ...telemetry,
});
log(`turn 1: ${first.text}`);
console.log(`turn 1: ${first.text}`);
messages.push(...first.response.messages, { role: 'user', content: 'Thanks!' });
const second = ai.streamText({
  model, system: 'You are a support bot.', messages, ...telemetry });
let text = '';
for await (const part of second.textStream) text += part;
log(`turn 2: ${text}`);
console.log(`turn 2: ${text}`);

await tracerProvider.forceFlush();
await loggerProvider.forceFlush();
await tracerProvider.shutdown();
await loggerProvider.shutdown();
