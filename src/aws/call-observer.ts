// SDK middleware that reports each AWS call (service, operation, outcome,
// duration). Metrics count calls with it; tests use it to assert, for
// instance, that a warm replay makes no DynamoDB call; fault injection uses
// its `before` hook to fail calls on purpose.

export type AwsService = 'kinesis' | 'dynamodb' | 'iam' | 'sts';

export interface AwsCall {
  service: AwsService;
  operation: string;
  /** 'ok', or the error's name (ThrottlingException, ConditionalCheckFailedException, ...). */
  outcome: string;
  ms: number;
}

export interface AwsCallObserver {
  /** Runs before the call is sent; throwing here fails the call as the service would. */
  before?(service: AwsService, operation: string, input: unknown): void | Promise<void>;
  after?(call: AwsCall): void;
}

interface MiddlewareClient {
  middlewareStack: { add(middleware: unknown, options: Record<string, unknown>): void };
}

export function observeCalls(client: MiddlewareClient, service: AwsService, observer: AwsCallObserver): void {
  const middleware = (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: { input?: unknown }) => {
    const operation = (context.commandName ?? 'Unknown').replace(/Command$/, '');
    const started = performance.now();
    try {
      await observer.before?.(service, operation, args.input);
      const result = await next(args);
      observer.after?.({ service, operation, outcome: 'ok', ms: performance.now() - started });
      return result;
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      observer.after?.({ service, operation, outcome: name, ms: performance.now() - started });
      throw error;
    }
  };
  // 'initialize' runs once per command, outside the SDK's retry loop: one report per call.
  client.middlewareStack.add(middleware, { step: 'initialize', name: `observe-${service}-calls`, override: true });
}
