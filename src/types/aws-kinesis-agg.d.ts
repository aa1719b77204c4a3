// Types for the aws-kinesis-agg package (awslabs' KPL aggregation format for
// Node). The declaration it ships imports aws-sdk v2 and aws-lambda types this
// project does not have; this one covers what the project uses: the
// deaggregation functions, and the package's protobuf message type for the
// KPL AggregatedRecord. (Its RecordAggregator is not used: it keeps the
// partition key table in a plain object, so keys such as "5" or "__proto__"
// get another record's key; see src/ops/aggregate.ts.)
declare module 'aws-kinesis-agg' {
  /** A Kinesis record as deaggregation takes it: data as base64 (or a Buffer). */
  export interface KinesisRecordInput {
    partitionKey: string;
    explicitPartitionKey?: string;
    sequenceNumber: string;
    data: string | Buffer;
  }

  export interface DeaggregatedUserRecord {
    partitionKey: string;
    explicitPartitionKey?: string;
    sequenceNumber: string;
    /** Absent when the input was not an aggregate (it is then passed through as is). */
    subSequenceNumber?: number;
    /** base64 */
    data: string;
  }

  export function deaggregateSync(
    kinesisRecord: KinesisRecordInput,
    computeChecksums: boolean,
    afterRecordCallback: (error: Error | null | undefined, userRecords?: DeaggregatedUserRecord[]) => void,
  ): void;

  export function deaggregate(
    kinesisRecord: KinesisRecordInput,
    computeChecksums: boolean,
    perRecordCallback: (error: Error | null, userRecord?: DeaggregatedUserRecord) => void,
    afterRecordCallback: (error?: Error, errorUserRecord?: DeaggregatedUserRecord) => void,
  ): void;

  const agg: {
    deaggregateSync: typeof deaggregateSync;
    deaggregate: typeof deaggregate;
  };
  export default agg;
}

declare module 'aws-kinesis-agg/lib/common.js' {
  export interface AggregatedRecordMessage {
    partition_key_table: string[];
    explicit_hash_key_table: string[];
    records: { partition_key_index: number; explicit_hash_key_index?: number; data: Uint8Array; tags?: { key: string; value?: string }[] }[];
  }
  /** The protobufjs type of the KPL's AggregatedRecord (lib/kpl.json). */
  export const AggregatedRecord: {
    encode(message: AggregatedRecordMessage): { finish(): Uint8Array };
    decode(bytes: Uint8Array): AggregatedRecordMessage;
  };
  /** F3 89 9A C2 */
  export const magic: Buffer;
  const common: { AggregatedRecord: typeof AggregatedRecord; magic: Buffer };
  export default common;
}
