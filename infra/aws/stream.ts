// The Kinesis stream the producers write and the workers consume. Named and
// retained: its records are what a replay reads.
import { Aws, CfnCondition, Duration, Fn, RemovalPolicy, Token } from 'aws-cdk-lib';
import { Stream, StreamEncryption } from 'aws-cdk-lib/aws-kinesis';
import type { CfnStream } from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';
import { keepElementId, keepLogicalId } from './cfn.js';
import type { StreamParameters } from './parameters.js';

export type PolicyEventStreamProps = StreamParameters;

export class PolicyEventStream extends Construct {
  readonly stream: Stream;

  constructor(scope: Construct, id: string, props: PolicyEventStreamProps) {
    super(scope, id);
    // The mode is a parameter: the shard count applies only when it is PROVISIONED.
    const isProvisioned = keepElementId(new CfnCondition(this, 'IsProvisioned', { expression: Fn.conditionEquals(props.streamMode, 'PROVISIONED') }));
    this.stream = keepLogicalId(
      new Stream(this, 'Stream', {
        streamName: props.streamName,
        retentionPeriod: Duration.hours(props.retentionHours),
        // The AWS managed key (alias/aws/kinesis): consumers need no kms:Decrypt grant of their own.
        encryption: StreamEncryption.MANAGED,
        // Retained records are what a replay reads.
        removalPolicy: RemovalPolicy.RETAIN,
      }),
    );
    const cfnStream = this.stream.node.defaultChild as CfnStream;
    cfnStream.streamModeDetails = { streamMode: props.streamMode };
    cfnStream.shardCount = Token.asNumber(Fn.conditionIf(isProvisioned.logicalId, props.shardCount, Aws.NO_VALUE));
  }
}
