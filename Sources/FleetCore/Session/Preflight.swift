import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// One line of `upload --check`.
package struct PreflightItem: Sendable, Codable, Equatable {
    package enum Outcome: String, Sendable, Codable {
        case passed, failed, skipped
    }
    package var name: String
    package var outcome: Outcome
    package var detail: String
    /// What to do about a failure.
    package var hint: String?
}

/// Checks that a configuration can work before any file moves: the ledger, the credentials, the identity
/// (STS, on AWS), and every destination bucket (HeadBucket).
package struct Preflight {
    package var config: FleetConfig
    package var databaseURL: String
    package var environment: [String: String]
    package var homeDirectory: String
    package var logger: Logger
    package var timeouts = HTTPTimeouts(connectSeconds: 5, stallSeconds: 10, totalSeconds: 20)

    package init(
        config: FleetConfig,
        databaseURL: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        homeDirectory: String = NSHomeDirectory(),
        logger: Logger
    ) {
        self.config = config
        self.databaseURL = databaseURL
        self.environment = environment
        self.homeDirectory = homeDirectory
        self.logger = logger
    }

    /// Runs every check; a failure does not stop the others, so one run shows everything that is wrong.
    package func run() -> [PreflightItem] {
        var items: [PreflightItem] = []
        do {
            let ledger = try Ledger(url: databaseURL, logger: logger)
            items.append(
                .init(
                    name: "ledger",
                    outcome: .passed,
                    detail: "\(ledger.location), schema version \(try ledger.schemaVersion())"
                )
            )
        } catch {
            items.append(
                .init(
                    name: "ledger",
                    outcome: .failed,
                    detail: "\(error)",
                    hint: "start PostgreSQL or pass --database / DATABASE_URL"
                )
            )
        }

        let context: S3Context
        do {
            context = try S3Context(config: config, environment: environment, homeDirectory: homeDirectory)
        } catch {
            items.append(.init(name: "endpoint", outcome: .failed, detail: error.description, hint: "fix the endpoint"))
            return items
        }
        items.append(
            .init(name: "endpoint", outcome: .passed, detail: "\(context.endpoint), region \(context.endpoint.region)")
        )

        let credentials: AWSCredentials
        do {
            credentials = try context.credentials.credentials()
            items.append(.init(name: "credentials", outcome: .passed, detail: credentials.description))
        } catch let error as CredentialsError {
            items.append(.init(name: "credentials", outcome: .failed, detail: error.message, hint: error.hint))
            return items
        } catch {
            items.append(.init(name: "credentials", outcome: .failed, detail: "\(error)", hint: nil))
            return items
        }

        let client: S3Client
        do {
            client = try context.client(logger: logger, timeouts: timeouts)
        } catch {
            items.append(.init(name: "client", outcome: .failed, detail: error.description, hint: nil))
            return items
        }
        do {
            let identity = try client.getCallerIdentity(
                authority: context.endpoint.stsAuthority,
                scheme: context.endpoint.scheme
            )
            items.append(
                .init(name: "identity", outcome: .passed, detail: "\(identity.arn) (account \(identity.account))")
            )
        } catch
            where !context.endpoint.isAWS
            && ![.signatureMismatch, .invalidCredentials, .expiredToken].contains(error.kind)
        {
            items.append(
                .init(name: "identity", outcome: .skipped, detail: "the endpoint does not answer STS GetCallerIdentity")
            )
        } catch {
            items.append(
                .init(
                    name: "identity",
                    outcome: .failed,
                    detail: error.description,
                    hint: hint(for: error, credentials: credentials)
                )
            )
        }

        for bucket in destinationBuckets() {
            do {
                try client.headBucket(bucket)
                items.append(.init(name: "bucket \(bucket)", outcome: .passed, detail: "reachable (HeadBucket)"))
            } catch {
                items.append(
                    .init(
                        name: "bucket \(bucket)",
                        outcome: .failed,
                        detail: error.description,
                        hint: hint(for: error, credentials: credentials, bucket: bucket)
                    )
                )
            }
        }
        return items
    }

    /// The configured bucket, or with `keys.first_dir_is_bucket` the first-level directories of every source.
    func destinationBuckets() -> [String] {
        if let bucket = config.s3.bucket, !config.resolved.keys.firstDirIsBucket { return [bucket] }
        var names: Set<String> = []
        for source in config.resolved.sources {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []
            for entry in entries {
                var isDirectory: ObjCBool = false
                let path = source.path.appendingPathComponent(entry)
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                    names.insert(entry)
                }
            }
        }
        return names.sorted()
    }

    private func hint(for error: S3Error, credentials: AWSCredentials, bucket: String? = nil) -> String {
        let configure = config.s3.profile.map { "aws configure --profile \($0)" } ?? "aws configure"
        switch error.kind {
        case .noSuchBucket: return "create bucket \(bucket ?? "") or fix s3.bucket"
        case .signatureMismatch: return "the secret key does not match \(credentials.maskedKeyID): run `\(configure)`"
        case .invalidCredentials: return "the access key \(credentials.maskedKeyID) is unknown here: run `\(configure)`"
        case .accessDenied:
            return "grant s3:ListBucket and s3:PutObject on \(bucket ?? "the bucket") to these credentials"
        case .network, .timeout: return "check s3.endpoint / s3.region and the network (\(config.s3.endpoint ?? "AWS"))"
        case .expiredToken: return "the session token expired: refresh the credentials"
        case .tls: return "the endpoint's TLS certificate was not accepted"
        default: return "see the S3 error above"
        }
    }
}
