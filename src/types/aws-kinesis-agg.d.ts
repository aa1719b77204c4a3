// Types for the aws-kinesis-agg package (awslabs' KPL aggregation format for
// Node). The declaration it ships imports aws-sdk v2 and aws-lambda types this
// project does not have and omits RecordAggregator; this one covers what the
// project uses. A record's data is a Buffer (or a UTF-8 string) when
// aggregating; deaggregation answers with base64 strings.
declare module 'aws-kinesis-agg' {
  export interface AggregatorUserRecord {
    partitionKey: string;
    explicitHashKey?: string;
    data: Buffer | string;
  }

  /** One Kinesis record carrying the aggregate (magic bytes, protobuf AggregatedRecord, MD5). */
  export interface EncodedRecord {
    partitionKey: string;
    data: Buffer;
    ExplicitHashKey?: string;
  }

  /** Collects user records up to the 1 MiB record limit and encodes them as one aggregate. */
  export class RecordAggregator {
    constructor(onReadyCallback?: (error: Error | null, encoded?: EncodedRecord) => void);
    /** Adds a user record; throws when it would not fit (or alone is too large). */
    addUserRecord(record: AggregatorUserRecord): void;
    checkIfUserRecordFits(record: AggregatorUserRecord): boolean;
    calculateUserRecordSize(record: AggregatorUserRecord): number;
    /** Encodes the records added so far and empties the aggregator; undefined when empty. */
    build(): EncodedRecord | undefined;
    length(): number;
    clearRecords(): void;
  }

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
    RecordAggregator: typeof RecordAggregator;
    deaggregateSync: typeof deaggregateSync;
    deaggregate: typeof deaggregate;
  };
  export default agg;
}
