#!/usr/bin/env node
// Runs server_schema/ on AWS's AppSync simulator (@aws-amplify/amplify-appsync-simulator)
// against a DynamoDB endpoint (moto server in the tests).
//
// It reads template.yaml and configures the simulator with the template's data sources,
// pipeline functions, resolvers and VTL files, and serves schema.graphql unchanged.
//
// What this launcher adds to the simulator, and why (see ../README.md, "Simulator gaps"):
//   1. Identity (test-only). The simulator neither verifies SigV4 nor knows Cognito
//      identities: it reads the access key id from the Authorization header and nothing
//      else. This launcher maps the access key id to a Cognito identity id and sets
//      $ctx.identity.cognitoIdentityId from it, on HTTP and on subscriptions. Two sources:
//      a JSON file (--identity-map, {"<access key id>": "<identity id>"}, re-read when it
//      changes), and, for keys the file lacks, an optional test-only resolver URL
//      (--identity-resolver URL: GET URL/<access key id> answers {"identityId": ...} or
//      404), which the tests serve from the identity database of an in-process
//      `cogsync serve` that issued the keys. An unknown key gets no identity id, which the
//      resolvers refuse. Never point this at anything but a test harness.
//   2. $ctx.env, the API's environment variables (template: Api.EnvironmentVariables).
//   3. TransactWriteItems and BatchGetItem, which the simulator's DynamoDB loader lacks,
//      translated from AppSync's documented request shape to the DynamoDB API, with
//      AppSync's documented result shapes (cancellationReasons, unprocessedKeys).
//   4. $util.base64Encode/Decode work on UTF-8 for every string (the simulator decodes
//      ASCII and encodes non-literal strings wrongly).
//   5. It binds 127.0.0.1 on the requested port (0 = any free port).
//   6. Errors: only the resolver's error, as AppSync reports it (see appSyncErrors).
//   7. VTL maps compare string keys by value, as AppSync's Java maps do.
//   8. Linear-time value conversions (the simulator's are quadratic in map keys).
//   9. Template parameters (--parameter NAME=VALUE, repeatable; the others take their
//      defaults) and conditions: resources whose Condition is false are left out, and
//      !If, !Equals, !Not, !And, !Or, !Condition and !Ref of a parameter are resolved.
//  10. Lambda data sources (the sync trigger, SyncTriggerFunctionArn) invoke a local
//      stand-in through the Lambda Invoke API: POST <--lambda-endpoint>/2015-03-31/
//      functions/<function ARN>/invocations with the payload as JSON body, answered with
//      the function's JSON result; an X-Amz-Function-Error header makes it a failed
//      invocation (AppSync's $ctx.error, type Lambda:Unhandled). The tests serve it from
//      a Python handler (tests/aws/lambda_endpoint.py); `sam local start-lambda` speaks
//      the same API. Unsigned: never point it at anything but a local stand-in.
// On startup it prints one JSON line to stdout: {"url": ..., "realtimeUrl": ..., "port": ...}.
'use strict';

const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const sim = require('@aws-amplify/amplify-appsync-simulator');
const ddb = require('@aws-sdk/client-dynamodb');

const LIB = path.dirname(require.resolve('@aws-amplify/amplify-appsync-simulator'));
const helpers = require(path.join(LIB, 'utils/auth-helpers/helpers'));
const { VelocityTemplate } = require(path.join(LIB, 'velocity'));
const { generalUtils } = require(path.join(LIB, 'velocity/util/general-utils'));
const { JavaMap, createMapProxy } = require(path.join(LIB, 'velocity/value-mapper/map'));
const { JavaArray } = require(path.join(LIB, 'velocity/value-mapper/array'));
const { JavaString } = require(path.join(LIB, 'velocity/value-mapper/string'));
const { JavaInteger } = require(path.join(LIB, 'velocity/value-mapper/integer'));
const { JavaDecimal } = require(path.join(LIB, 'velocity/value-mapper/decimal'));
const mapperModule = require(path.join(LIB, 'velocity/value-mapper/mapper'));
const { DynamoDBDataLoader } = require(path.join(LIB, 'data-loader/dynamo-db'));
const dynamoUtils = require(path.join(LIB, 'data-loader/dynamo-db/utils'));
const dynamoMarshalling = require(require.resolve('@aws-sdk/util-dynamodb', { paths: [LIB] }));

function parseArgs(argv) {
  const args = { port: '0', region: 'us-east-1', parameters: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (argv[i + 1] === undefined) throw new Error(`option --${name} needs a value`);
    if (name === 'parameter') {
      const match = /^([A-Za-z0-9]+)=(.*)$/s.exec(argv[i + 1]);
      if (!match) throw new Error(`--parameter ${argv[i + 1]}: use NAME=VALUE`);
      args.parameters[match[1]] = match[2];
      continue;
    }
    args[name.replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
  }
  for (const required of ['template', 'dynamodbEndpoint', 'identityMap']) {
    if (!args[required]) throw new Error(`missing --${required.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
  }
  return args;
}

// CloudFormation short-form tags, kept as {tag: value} for the resolver below.
const CFN_TAGS = ['Ref', 'GetAtt', 'Sub', 'Join', 'If', 'Equals', 'Not', 'Select', 'FindInMap',
  'Split', 'And', 'Or', 'Condition', 'GetAZs', 'ImportValue', 'Base64', 'Cidr'];
const CFN_SCHEMA = yaml.DEFAULT_SCHEMA.extend(CFN_TAGS.flatMap((tag) => ['scalar', 'sequence', 'mapping'].map(
  (kind) => new yaml.Type('!' + tag, { kind, construct: (data) => ({ ['Fn::' + tag]: data }) }))));

function loadTemplate(file) {
  return yaml.load(fs.readFileSync(file, 'utf8'), { schema: CFN_SCHEMA });
}

// 9. The template's resources for the given parameters, as CloudFormation plans them:
//    resources with a false Condition left out; !If, condition functions and !Ref of a
//    parameter resolved (references to resources stay as they are).
const NO_VALUE = Symbol('AWS::NoValue');

function planResources(template, given) {
  const declared = template.Parameters || {};
  const unknown = Object.keys(given).filter((name) => !(name in declared));
  if (unknown.length) throw new Error(`not template parameters: ${unknown.join(', ')}`);
  const values = {};
  for (const [name, p] of Object.entries(declared)) {
    values[name] = name in given ? given[name] : String(p.Default === undefined ? '' : p.Default);
    if (p.AllowedPattern && !new RegExp(p.AllowedPattern).test(values[name])) {
      throw new Error(`parameter ${name}=${values[name]} does not match ${p.AllowedPattern}`);
    }
  }
  const conditions = {};
  const condition = (name) => {
    if (!(name in conditions)) {
      const definition = (template.Conditions || {})[name];
      if (definition === undefined) throw new Error(`no condition ${name}`);
      conditions[name] = Boolean(resolve(definition));
    }
    return conditions[name];
  };
  const resolve = (node) => {
    if (Array.isArray(node)) return node.map(resolve).filter((v) => v !== NO_VALUE);
    if (!node || typeof node !== 'object') return node;
    const keys = Object.keys(node);
    if (keys.length === 1) {
      const arg = node[keys[0]];
      switch (keys[0]) {
        case 'Ref':
        case 'Fn::Ref':
          if (arg === 'AWS::NoValue') return NO_VALUE;
          return arg in values ? values[arg] : node;
        case 'Fn::If':
          return resolve(condition(arg[0]) ? arg[1] : arg[2]);
        case 'Fn::Condition':
          return condition(arg);
        case 'Fn::Equals':
          return resolve(arg[0]) === resolve(arg[1]);
        case 'Fn::Not':
          return !resolve(arg[0]);
        case 'Fn::And':
          return arg.every((a) => resolve(a));
        case 'Fn::Or':
          return arg.some((a) => resolve(a));
        default:
      }
    }
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      const resolved = resolve(value);
      if (resolved !== NO_VALUE) out[key] = resolved;
    }
    return out;
  };
  const resources = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (resource.Condition !== undefined && !condition(resource.Condition)) continue;
    resources[id] = { ...resource, Properties: resolve(resource.Properties || {}) };
  }
  return resources;
}

// 10. A Lambda data source's invoke: the Lambda Invoke API of a local stand-in.
function lambdaInvoker(endpoint, functionArn) {
  if (!endpoint) {
    throw new Error(`the template invokes Lambda ${functionArn}: give --lambda-endpoint URL (a local stand-in)`);
  }
  const url = `${endpoint.replace(/\/$/, '')}/2015-03-31/functions/${encodeURIComponent(functionArn)}/invocations`;
  return async (payload) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(payload === undefined ? null : payload),
    });
    const text = await response.text();
    const functionError = response.headers.get('x-amz-function-error');
    if (!response.ok || functionError) {
      let message = text;
      try {
        message = JSON.parse(text).errorMessage || text;
      } catch (_) { /* not JSON: the body as it is */ }
      const error = new Error(message || `Lambda invocation failed (HTTP ${response.status})`);
      error.type = functionError ? `Lambda:${functionError}` : 'Lambda:ServiceException';
      error.extensions = { errorType: error.type };
      throw error;
    }
    return text ? JSON.parse(text) : null;
  };
}

function logicalId(value) {
  // !Ref X, !GetAtt X.Name, !GetAtt [X, Name] -> X
  if (typeof value === 'string') return value;
  if (value && value['Fn::Ref'] !== undefined) return value['Fn::Ref'];
  if (value && value.Ref !== undefined) return value.Ref;
  const att = value && value['Fn::GetAtt'];
  if (att) return Array.isArray(att) ? att[0] : String(att).split('.')[0];
  throw new Error(`cannot resolve ${JSON.stringify(value)} to a resource`);
}

function buildConfig(args) {
  const templateFile = path.resolve(args.template);
  const dir = path.dirname(templateFile);
  const resources = planResources(loadTemplate(templateFile), args.parameters);
  const byType = (type) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const tableNames = {};
  for (const [id] of byType('AWS::DynamoDB::Table')) tableNames[id] = (args.tablePrefix || '') + id;
  const nameOf = (id) => resources[id].Properties.Name;

  const mappingTemplates = [];
  const templateRef = (props, kind) => {
    const location = props[`${kind}MappingTemplateS3Location`];
    if (!location) throw new Error(`resource lacks ${kind}MappingTemplateS3Location`);
    mappingTemplates.push({ path: location, content: fs.readFileSync(path.join(dir, location), 'utf8') });
    return location;
  };
  const dataSources = byType('AWS::AppSync::DataSource').map(([, r]) => {
    const p = r.Properties;
    if (p.Type === 'NONE') return { type: 'NONE', name: p.Name };
    if (p.Type === 'AWS_LAMBDA') {
      const arn = p.LambdaConfig.LambdaFunctionArn;
      if (typeof arn !== 'string') throw new Error(`cannot resolve Lambda ARN ${JSON.stringify(arn)}`);
      return { type: 'AWS_LAMBDA', name: p.Name, invoke: lambdaInvoker(args.lambdaEndpoint, arn) };
    }
    if (p.Type !== 'AMAZON_DYNAMODB') throw new Error(`data source type ${p.Type} is not simulated`);
    return {
      type: 'AMAZON_DYNAMODB',
      name: p.Name,
      config: {
        endpoint: args.dynamodbEndpoint,
        region: args.region,
        // The DynamoDB endpoint's credentials: the exported AWS_* variables, as for any AWS SDK.
        credentials: {
          accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'cogsync-local',
          secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'cogsync-local',
        },
        tableName: tableNames[logicalId(p.DynamoDBConfig.TableName)],
      },
    };
  });
  const functionIds = {};
  const functions = byType('AWS::AppSync::FunctionConfiguration').map(([id, r]) => {
    const p = r.Properties;
    functionIds[id] = p.Name;
    return {
      name: p.Name,
      dataSourceName: nameOf(logicalId(p.DataSourceName)),
      requestMappingTemplateLocation: templateRef(p, 'Request'),
      responseMappingTemplateLocation: templateRef(p, 'Response'),
    };
  });
  const resolvers = byType('AWS::AppSync::Resolver').map(([, r]) => {
    const p = r.Properties;
    const resolver = {
      kind: p.Kind || 'UNIT',
      typeName: p.TypeName,
      fieldName: p.FieldName,
      requestMappingTemplateLocation: templateRef(p, 'Request'),
      responseMappingTemplateLocation: templateRef(p, 'Response'),
    };
    if (resolver.kind === 'PIPELINE') {
      resolver.functions = p.PipelineConfig.Functions.map((f) => functionIds[logicalId(f)]);
    } else {
      resolver.dataSourceName = nameOf(logicalId(p.DataSourceName));
    }
    return resolver;
  });
  const [[, api]] = byType('AWS::AppSync::GraphQLApi');
  const env = {};
  for (const [name, value] of Object.entries(api.Properties.EnvironmentVariables || {})) {
    env[name] = typeof value === 'string' ? value : tableNames[logicalId(value)];
  }
  const [[, schema]] = byType('AWS::AppSync::GraphQLSchema');
  const schemaPath = path.join(dir, schema.Properties.DefinitionS3Location);
  return {
    tableNames,
    env,
    config: {
      appSync: {
        name: api.Properties.Name || 'cogsync',
        defaultAuthenticationType: { authenticationType: api.Properties.AuthenticationType },
        additionalAuthenticationProviders: [],
      },
      schema: { content: fs.readFileSync(schemaPath, 'utf8'), path: 'schema.graphql' },
      dataSources,
      functions,
      resolvers,
      mappingTemplates,
    },
  };
}

// 1. Identity (test-only): access key id -> Cognito identity id, from the --identity-map
//    file, then from the --identity-resolver URL (answers cached; keys are never reused).
function identitySource(file, resolverUrl) {
  let cached = { stamp: '', map: {} };
  const resolved = new Map();
  const fromFile = (accessKeyId) => {
    let stat;
    try {
      stat = fs.statSync(file);
    } catch (_) {
      return undefined;
    }
    const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (stamp !== cached.stamp) {
      cached = { stamp, map: JSON.parse(fs.readFileSync(file, 'utf8') || '{}') };
    }
    return cached.map[accessKeyId];
  };
  const known = (accessKeyId) => (accessKeyId === undefined ? undefined
    : fromFile(accessKeyId) || resolved.get(accessKeyId));
  // Ask the resolver about a key neither source knows yet (before the request runs, as
  // the simulator's own lookups are synchronous).
  const learn = async (accessKeyId) => {
    if (!resolverUrl || accessKeyId === undefined || known(accessKeyId)) return;
    const response = await fetch(`${resolverUrl.replace(/\/$/, '')}/${encodeURIComponent(accessKeyId)}`);
    if (response.status === 404) return;
    if (!response.ok) throw new Error(`identity resolver answered HTTP ${response.status}`);
    const { identityId } = await response.json();
    if (identityId) resolved.set(accessKeyId, identityId);
  };
  return { known, learn };
}

function accessKeyOf(authorization) {
  const match = /Credential=([^/,\s]+)\//.exec(authorization || '');
  return match ? match[1] : undefined;
}

function installIdentityAndEnv(identities, env, region) {
  const iamToken = (authorization) => {
    const identityId = identities.known(accessKeyOf(authorization));
    return {
      accountId: '123456789012',
      userArn: 'arn:aws:sts::123456789012:assumed-role/cogsync/CognitoIdentityCredentials',
      username: identityId ? 'auth-user' : 'unauth-user',
      cognitoIdentityId: identityId,
      cognitoIdentityPoolId: identityId ? `${region}:00000000-0000-0000-0000-000000000000` : undefined,
      cognitoIdentityAuthType: identityId ? 'authenticated' : undefined,
    };
  };
  const original = helpers.extractIamToken;
  helpers.extractIamToken = (authorization, appSyncConfig) => {
    original(authorization, appSyncConfig); // keeps the simulator's own header checks
    return iamToken(authorization);
  };
  const build = VelocityTemplate.prototype.buildRenderContext;
  VelocityTemplate.prototype.buildRenderContext = function (ctxValues, requestContext, info) {
    let context = requestContext;
    if (requestContext.requestAuthorizationMode === 'AWS_IAM' && !requestContext.iamToken) {
      // Subscriptions: the simulator builds no IAM token on its WebSocket path.
      const authorization = helpers.extractHeader(requestContext.headers || {}, 'Authorization');
      context = { ...requestContext, iamToken: iamToken(authorization) };
    }
    const rendered = build.call(this, ctxValues, context, info);
    rendered.ctx.env = mapperModule.map(env);
    return rendered;
  };
  // Learn unknown keys before a request or subscription runs; then HTTP requests get the
  // IAM token again (the simulator built it before the key was known).
  const authorizationOf = (context) => helpers.extractHeader(context.headers || {}, 'Authorization');
  const queries = require(path.join(LIB, 'utils/graphql-runner/query-and-mutation'));
  const runQuery = queries.runQueryOrMutation;
  queries.runQueryOrMutation = async (schema, doc, variables, operationName, context) => {
    if (context && context.requestAuthorizationMode === 'AWS_IAM') {
      const authorization = authorizationOf(context);
      await identities.learn(accessKeyOf(authorization));
      if (context.iamToken) context.iamToken = iamToken(authorization);
    }
    return runQuery(schema, doc, variables, operationName, context);
  };
  const subscriptions = require(path.join(LIB, 'utils/graphql-runner/subscriptions'));
  const runSubscription = subscriptions.runSubscription;
  subscriptions.runSubscription = async (schema, doc, variables, operationName, context) => {
    if (context && context.requestAuthorizationMode === 'AWS_IAM') {
      await identities.learn(accessKeyOf(authorizationOf(context)));
    }
    return runSubscription(schema, doc, variables, operationName, context);
  };
}

// 6. Errors as AppSync reports them: a resolver's $util.error only, without graphql-js's
//    "Cannot return null for non-nullable field" echo that the simulator puts first.
function appSyncErrors() {
  const runner = require(path.join(LIB, 'utils/graphql-runner/query-and-mutation'));
  const run = runner.runQueryOrMutation;
  runner.runQueryOrMutation = async (...argv) => {
    const result = await run(...argv);
    if (result && Array.isArray(result.errors)) {
      const typed = new Set(result.errors.filter((e) => e.errorType).map((e) => JSON.stringify(e.path)));
      result.errors = result.errors.filter((e) => e.errorType
        || !(String(e.message).startsWith('Cannot return null for non-nullable field') && typed.has(JSON.stringify(e.path))));
    }
    return result;
  };
}

// 7. VTL maps keyed by string value, as in Java: the simulator's map stores a wrapped
//    string key as an object, so containsKey/remove of an equal string miss it.
function stringKeyedMaps() {
  const { put, containsKey, remove } = JavaMap.prototype;
  JavaMap.prototype.put = function (key, value) {
    return put.call(this, key == null ? key : String(key), value);
  };
  JavaMap.prototype.containsKey = function (key) {
    return containsKey.call(this, key == null ? key : String(key));
  };
  JavaMap.prototype.remove = function (key) {
    return remove.call(this, key == null ? key : String(key));
  };
}

// 8. Speed: the simulator converts every context value to its Java-like wrappers, every
//    Java-like map back to JSON, and every DynamoDB item to plain values with a copy per
//    map key (quadratic in the keys); these do the same conversions in one pass. It matters
//    for a dataset item holding a 1,024-record index, converted at every step.
function unmarshall(raw, isRaw = true) {
  const content = isRaw ? dynamoMarshalling.unmarshall(raw) : raw;
  if (content && typeof content === 'object' && content.wrapperName === 'Set') return content.values;
  if (Array.isArray(content)) return content.map((value) => unmarshall(value, false));
  if (content && typeof content === 'object') {
    const plain = {};
    for (const [key, value] of Object.entries(content)) plain[key] = unmarshall(value, false);
    return plain;
  }
  return content;
}

function linearConversions() {
  dynamoUtils.unmarshall = unmarshall;
  JavaMap.prototype.toJSON = function () {
    const plain = {};
    for (const [key, value] of this.map.entries()) {
      plain[key] = value !== null && typeof value === 'object' && 'toJSON' in value ? value.toJSON() : value;
    }
    return plain;
  };
  const isPlainObject = (v) => v !== null && typeof v === 'object'
    && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
  const toJava = (value, hint) => {
    if (value instanceof JavaMap || value instanceof JavaArray) return value;
    if (Array.isArray(value)) return new JavaArray(value.map((x) => toJava(x)), toJava);
    if (isPlainObject(value)) {
      const converted = {};
      for (const [k, v] of Object.entries(value)) converted[k] = toJava(v);
      return createMapProxy(new JavaMap(converted, toJava));
    }
    if (typeof value === 'string') return new JavaString(value);
    if (typeof value === 'number') {
      if (hint === 'integer' || (hint !== 'decimal' && Math.trunc(value) === value)) return new JavaInteger(value);
      return new JavaDecimal(value);
    }
    return value;
  };
  mapperModule.map = toJava;
}

// 3. TransactWriteItems and BatchGetItem for the simulator's DynamoDB loader.
function condition(c) {
  if (!c) return {};
  const out = { ConditionExpression: c.expression };
  if (c.expressionNames && Object.keys(c.expressionNames).length) out.ExpressionAttributeNames = c.expressionNames;
  if (c.expressionValues && Object.keys(c.expressionValues).length) out.ExpressionAttributeValues = c.expressionValues;
  if (c.returnValuesOnConditionCheckFailure) out.ReturnValuesOnConditionCheckFailure = 'ALL_OLD';
  return out;
}

function transactItem(item) {
  const base = { TableName: item.table, ...condition(item.condition) };
  switch (item.operation) {
    case 'PutItem':
      return { Put: { ...base, Item: { ...item.key, ...item.attributeValues } } };
    case 'DeleteItem':
      return { Delete: { ...base, Key: item.key } };
    case 'ConditionCheck':
      return { ConditionCheck: { ...base, Key: item.key } };
    case 'UpdateItem': {
      const u = item.update;
      return {
        Update: {
          ...base,
          Key: item.key,
          UpdateExpression: u.expression,
          ExpressionAttributeNames: { ...(base.ExpressionAttributeNames || {}), ...(u.expressionNames || {}) },
          ExpressionAttributeValues: { ...(base.ExpressionAttributeValues || {}), ...(u.expressionValues || {}) },
        },
      };
    }
    default:
      throw new Error(`unsupported transaction operation ${item.operation}`);
  }
}

function dropEmpty(entry) {
  const op = Object.values(entry)[0];
  for (const name of ['ExpressionAttributeNames', 'ExpressionAttributeValues']) {
    if (op[name] && !Object.keys(op[name]).length) delete op[name];
  }
  return entry;
}

class TransactingDynamoDBLoader extends DynamoDBDataLoader {
  async load(payload) {
    if (payload.operation === 'TransactWriteItems') return this.transactWrite(payload);
    if (payload.operation === 'BatchGetItem') return this.batchGet(payload);
    return super.load(payload);
  }

  async transactWrite(payload) {
    const items = payload.transactItems.map((item) => dropEmpty(transactItem(item)));
    try {
      await this.client.send(new ddb.TransactWriteItemsCommand({ TransactItems: items }));
    } catch (e) {
      if (e.name === 'TransactionCanceledException') {
        // AppSync: $ctx.error is set and $ctx.result carries keys and cancellationReasons.
        const error = new Error(e.message);
        error.extensions = { errorType: 'DynamoDB:TransactionCanceledException' };
        error.type = 'DynamoDB:TransactionCanceledException';
        error.cancellationReasons = (e.CancellationReasons || []).map((r) => ({
          type: r.Code === 'None' ? null : r.Code,
          message: r.Message || null,
        }));
        throw error;
      }
      throw e;
    }
    return {
      keys: payload.transactItems.map((item) => unmarshall(item.key)),
      cancellationReasons: null,
    };
  }

  async batchGet(payload) {
    const request = {};
    for (const [table, spec] of Object.entries(payload.tables)) {
      request[table] = { Keys: spec.keys, ConsistentRead: Boolean(spec.consistentRead) };
    }
    const result = await this.client.send(new ddb.BatchGetItemCommand({ RequestItems: request }));
    const data = {};
    const unprocessedKeys = {};
    for (const [table, spec] of Object.entries(payload.tables)) {
      const found = (result.Responses[table] || []).map((item) => unmarshall(item));
      const keyNames = Object.keys(spec.keys[0] || {});
      const same = (a, b) => keyNames.every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
      data[table] = spec.keys.map((key) => {
        const plain = unmarshall(key);
        return found.find((item) => same(item, plain)) || null;
      });
      const pending = ((result.UnprocessedKeys || {})[table] || {}).Keys || [];
      unprocessedKeys[table] = pending.map((key) => unmarshall(key));
    }
    return { data, unprocessedKeys };
  }
}

// A failed transaction: AppSync's response template sees $ctx.error and, in $ctx.result,
// the cancellation reasons (one per transaction item, type null where nothing failed).
function exposeCancellationReasons() {
  const build = VelocityTemplate.prototype.buildRenderContext;
  VelocityTemplate.prototype.buildRenderContext = function (ctxValues, requestContext, info) {
    const error = ctxValues.error;
    if (error && error.cancellationReasons && ctxValues.result == null) {
      ctxValues = { ...ctxValues, result: { keys: null, cancellationReasons: error.cancellationReasons } };
    }
    return build.call(this, ctxValues, requestContext, info);
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { config, env, tableNames } = buildConfig(args);
  installIdentityAndEnv(identitySource(path.resolve(args.identityMap), args.identityResolver), env, args.region);
  exposeCancellationReasons();
  appSyncErrors();
  stringKeyedMaps();
  linearConversions();
  // 4. base64 of the UTF-8 bytes of any string (the simulator's versions mishandle
  //    non-literal strings and decode as ASCII).
  generalUtils.base64Encode = (value) => Buffer.from(String(value), 'utf8').toString('base64');
  generalUtils.base64Decode = (value) => Buffer.from(String(value), 'base64').toString('utf8');
  sim.removeDataLoader('AMAZON_DYNAMODB');
  sim.addDataLoader('AMAZON_DYNAMODB', TransactingDynamoDBLoader);

  const simulator = new sim.AmplifyAppSyncSimulator({ port: 0, wsPort: 0 });
  const server = simulator._server._httpServer;
  const listen = server.listen.bind(server);
  const port = Number(args.port);
  server.listen = () => listen(port, '127.0.0.1');
  simulator.init(config);
  await simulator.start();
  const actual = server.address().port;
  process.stdout.write(JSON.stringify({
    url: `http://127.0.0.1:${actual}/graphql`,
    realtimeUrl: `ws://127.0.0.1:${actual}/graphql/realtime`,
    port: actual,
    tables: tableNames,
  }) + '\n');
  const stop = () => simulator.stop().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`cogsync simulator failed to start: ${e.stack || e}\n`);
  process.exit(1);
});
