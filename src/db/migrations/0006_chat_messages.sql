CREATE TABLE "chat_conversations" (
	"platform" text NOT NULL,
	"conversation_id" text NOT NULL,
	"kind" text DEFAULT 'personal' NOT NULL,
	"reference" jsonb NOT NULL,
	"tenant_id" text,
	"installed_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "chat_conversations_platform_conversation_id_pk" PRIMARY KEY("platform","conversation_id")
);
--> statement-breakpoint
CREATE TABLE "chat_messages" (
	"cycle_id" text NOT NULL,
	"platform" text NOT NULL,
	"conversation_id" text NOT NULL,
	"key" text NOT NULL,
	"message_ref" text,
	"thread_ref" text,
	"model" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "chat_messages_cycle_id_platform_conversation_id_key_pk" PRIMARY KEY("cycle_id","platform","conversation_id","key")
);
--> statement-breakpoint
CREATE INDEX "chat_messages_ref_idx" ON "chat_messages" USING btree ("platform","message_ref");