import FleetLedger
import FleetSystem
import Foundation

extension Ledger {
    /// Creates the project the configuration names, or updates its destination; returns its id.
    ///
    /// - Parameters:
    ///   - region: The resolved region (`S3Context`'s endpoint).
    ///   - endpoint: The custom endpoint, if any.
    package func upsertProject(_ config: FleetConfig, region: String, endpoint: String?) throws -> Int64 {
        try upsertProject(
            ProjectDestination(
                name: config.project.name,
                bucket: config.destinationBucket,
                prefix: config.resolved.s3.prefix,
                region: region,
                endpoint: endpoint,
                keyTemplate: config.resolved.keys.template,
                sharedPrefix: config.resolved.s3.sharedPrefix
            )
        )
    }

    /// Records the effective configuration once per distinct hash; returns its id.
    package func recordConfig(projectID: Int64, config: FleetConfig, sourcePath: String?) throws -> Int64 {
        try recordConfig(
            projectID: projectID,
            hash: config.hash,
            json: String(decoding: config.canonicalJSON(), as: UTF8.self),
            sourcePath: sourcePath
        )
    }

    /// The configuration the session ran with, as recorded in `config_history`, with `overrides` applied.
    ///
    /// - Throws: `ConfigError` when the session has no recorded configuration or it no longer decodes.
    package func sessionConfig(_ session: SessionRecord, overrides: [ConfigOverride] = []) throws -> FleetConfig {
        let recorded = try sessionConfigJSON(session)
        do throws(ConfigError) {
            return try ConfigLoader.decode(try ConfigValue.parseJSON(Data(recorded.json.utf8)), overrides: overrides)
        } catch {
            var located = error
            located.file = "configuration \(recorded.id) of session \(session.id)"
            throw located
        }
    }
}
