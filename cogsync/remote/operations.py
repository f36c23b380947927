"""The GraphQL documents the client sends (the only place they are written).

They follow ``server_schema/schema.graphql``. Pushes and deletions select only record
metadata: the client knows the values it sent, and small answers keep AppSync's
subscription payloads (which mirror the mutation's selection) far below 240 KB.
"""

from __future__ import annotations

__all__ = [
    "DELETE_DATASET",
    "LIST_DATASETS",
    "LIST_RECORDS",
    "ON_DATASET_CHANGED",
    "PUSH_RECORDS",
    "SERVER_INFO",
]

SERVER_INFO = """
query ServerInfo {
  serverInfo {
    protocolVersion
    maxDatasets
    maxRecords
    maxDatasetBytes
    maxKeyBytes
  }
}
"""

LIST_DATASETS = """
query ListDatasets($nextToken: String, $limit: Int) {
  listDatasets(nextToken: $nextToken, limit: $limit) {
    datasets {
      name
      syncCount
      sizeInBytes
      recordCount
      lastModifiedDate
      deleted
    }
    nextToken
  }
}
"""

# What a dataset change notification carries. The subscription's selection must be a
# subset of each triggering mutation's selection (AppSync fills missing fields with null),
# so both mutations select exactly these fields too.
_CHANGE = "identityId datasetName syncCount deleted"

# A record's metadata, without its value: the client knows the values it pushed.
_RECORD_METADATA = "key syncCount lastModifiedDate lastModifiedBy deviceLastModifiedDate"

LIST_RECORDS = """
query ListRecords($datasetName: String!, $lastSyncCount: Int!, $nextToken: String, $limit: Int) {
  listRecords(
    datasetName: $datasetName
    lastSyncCount: $lastSyncCount
    nextToken: $nextToken
    limit: $limit
  ) {
    datasetName
    syncCount
    deleted
    mergedDatasetNames
    records { key value syncCount lastModifiedDate lastModifiedBy deviceLastModifiedDate }
    nextToken
  }
}
"""

PUSH_RECORDS = f"""
mutation PushRecords($input: PushRecordsInput!) {{
  pushRecords(input: $input) {{
    {_CHANGE}
    records {{ {_RECORD_METADATA} }}
  }}
}}
"""

DELETE_DATASET = f"""
mutation DeleteDataset($datasetName: String!, $clientRequestId: String!) {{
  deleteDataset(datasetName: $datasetName, clientRequestId: $clientRequestId) {{ {_CHANGE} }}
}}
"""

ON_DATASET_CHANGED = f"""
subscription OnDatasetChanged($identityId: ID!) {{
  onDatasetChanged(identityId: $identityId) {{ {_CHANGE} }}
}}
"""
