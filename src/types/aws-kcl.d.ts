// Types for the aws-kcl package (it ships none): the MultiLangDaemon protocol
// as the package presents it to a record processor.
declare module 'aws-kcl' {
  export interface KclRecord {
    data: string; // base64
    partitionKey: string;
    sequenceNumber: string;
    subSequenceNumber?: number;
    approximateArrivalTimestamp?: number;
  }
  export interface Checkpointer {
    checkpoint(sequenceNumber: string | null, callback: (err: string | null | undefined, sequenceNumber?: string) => void): void;
    checkpoint(callback: (err: string | null | undefined, sequenceNumber?: string) => void): void;
  }
  export interface InitializeInput {
    shardId: string;
    sequenceNumber?: string;
    subSequenceNumber?: number;
  }
  export interface ProcessRecordsInput {
    records: KclRecord[];
    checkpointer: Checkpointer;
    millisBehindLatest?: number;
  }
  export interface CheckpointingInput {
    checkpointer: Checkpointer;
  }
  export interface RecordProcessor {
    initialize(input: InitializeInput, done: () => void): void;
    processRecords(input: ProcessRecordsInput, done: () => void): void;
    leaseLost(input: Record<string, never>, done: () => void): void;
    shardEnded(input: CheckpointingInput, done: () => void): void;
    shutdownRequested(input: CheckpointingInput, done: () => void): void;
  }
  export default function kcl(processor: RecordProcessor): { run(): void };
}
